package main

// The deployment definitions under deploy/ and the Dockerfile must not drift from
// the CLI: every manifest's container args and env are run, as the platform would
// run them (its shard env per task), against the fake Akahu with --dry-run.

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// deployDir is deploy/ at the repository root, seen from cmd/extract.
const deployDir = "../../deploy"

// container is the part of a manifest's container spec the test runs.
type container struct {
	Args []string `yaml:"args"`
	Env  []struct {
		Name      string `yaml:"name"`
		Value     string `yaml:"value"`
		ValueFrom *struct {
			SecretKeyRef *struct {
				Name string `yaml:"name"`
				Key  string `yaml:"key"`
			} `yaml:"secretKeyRef"`
		} `yaml:"valueFrom"`
	} `yaml:"env"`
	VolumeMounts []struct {
		Name      string `yaml:"name"`
		MountPath string `yaml:"mountPath"`
	} `yaml:"volumeMounts"`
	SecurityContext struct {
		ReadOnlyRootFilesystem *bool `yaml:"readOnlyRootFilesystem"`
	} `yaml:"securityContext"`
}

// podSpec is the part of a pod (or Cloud Run task) spec the test reads.
type podSpec struct {
	SecurityContext struct {
		RunAsNonRoot *bool `yaml:"runAsNonRoot"`
	} `yaml:"securityContext"`
	Containers []container `yaml:"containers"`
	Volumes    []struct {
		Name   string `yaml:"name"`
		Secret *struct {
			SecretName string `yaml:"secretName"`
		} `yaml:"secret"`
	} `yaml:"volumes"`
}

// manifest is a Cloud Run Job or a Kubernetes CronJob, as far as the test reads them.
type manifest struct {
	APIVersion string `yaml:"apiVersion"`
	Kind       string `yaml:"kind"`
	Metadata   struct {
		Name string `yaml:"name"`
	} `yaml:"metadata"`
	Spec struct {
		// Cloud Run Job: spec.template.spec.{taskCount, parallelism, template.spec}.
		Template struct {
			Spec struct {
				TaskCount   int `yaml:"taskCount"`
				Parallelism int `yaml:"parallelism"`
				Template    struct {
					Spec podSpec `yaml:"spec"`
				} `yaml:"template"`
			} `yaml:"spec"`
		} `yaml:"template"`
		// Kubernetes CronJob.
		ConcurrencyPolicy string `yaml:"concurrencyPolicy"`
		JobTemplate       struct {
			Spec struct {
				CompletionMode string `yaml:"completionMode"`
				Completions    int    `yaml:"completions"`
				Parallelism    int    `yaml:"parallelism"`
				Template       struct {
					Spec podSpec `yaml:"spec"`
				} `yaml:"template"`
			} `yaml:"spec"`
		} `yaml:"jobTemplate"`
	} `yaml:"spec"`
}

// readManifests decodes every YAML document of every file under deploy/.
func readManifests(t *testing.T) map[string]manifest {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(deployDir, "*.y*ml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatalf("no manifests under %s", deployDir)
	}
	out := map[string]manifest{}
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		dec := yaml.NewDecoder(bytes.NewReader(data))
		for i := 0; ; i++ {
			var m manifest
			err := dec.Decode(&m)
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("%s document %d: %v", file, i, err)
			}
			out[fmt.Sprintf("%s#%d", filepath.Base(file), i)] = m
		}
	}
	return out
}

// shardTask is one task (Cloud Run) or pod (Kubernetes) of a manifest's job.
type shardTask struct {
	index, count int      // the shard the binary must plan
	platformEnv  []string // what the platform sets in the container
}

// TestDeployManifests runs each manifest's container args and env, one process per
// task or completion index with the platform's shard env, against the fake Akahu
// with --dry-run: each must exit 0 and plan the shard of its index. A manifest that
// passes a flag the CLI does not have fails here (the CLI exits 2).
func TestDeployManifests(t *testing.T) {
	f := newFakeAkahu(t, smallOptions(31))
	for name, m := range readManifests(t) {
		t.Run(name, func(t *testing.T) {
			var pod podSpec
			var tasks []shardTask
			switch {
			case m.APIVersion == "run.googleapis.com/v1" && m.Kind == "Job":
				js := m.Spec.Template.Spec
				pod = js.Template.Spec
				if js.TaskCount < 1 || js.Parallelism < 1 || js.Parallelism > js.TaskCount {
					t.Fatalf("taskCount %d, parallelism %d", js.TaskCount, js.Parallelism)
				}
				for i := range js.TaskCount {
					tasks = append(tasks, shardTask{index: i, count: js.TaskCount, platformEnv: []string{
						"CLOUD_RUN_JOB=" + m.Metadata.Name, "CLOUD_RUN_EXECUTION=" + m.Metadata.Name + "-x1",
						"CLOUD_RUN_TASK_INDEX=" + strconv.Itoa(i), "CLOUD_RUN_TASK_COUNT=" + strconv.Itoa(js.TaskCount),
					}})
				}
			case m.APIVersion == "batch/v1" && m.Kind == "CronJob":
				js := m.Spec.JobTemplate.Spec
				pod = js.Template.Spec
				if m.Spec.ConcurrencyPolicy != "Forbid" {
					t.Errorf("concurrencyPolicy %q, want Forbid (two runs of a shard would wait on its lock)", m.Spec.ConcurrencyPolicy)
				}
				if js.CompletionMode != "Indexed" || js.Completions < 1 || js.Parallelism != js.Completions {
					t.Fatalf("completionMode %q, completions %d, parallelism %d: want Indexed, completions = parallelism",
						js.CompletionMode, js.Completions, js.Parallelism)
				}
				if len(pod.Containers) == 1 {
					if got := flagValue(pod.Containers[0].Args, "--shards"); got != strconv.Itoa(js.Completions) {
						t.Errorf("args have --shards %q, want the completions %d (Kubernetes exports only JOB_COMPLETION_INDEX)", got, js.Completions)
					}
				}
				if rn := pod.SecurityContext.RunAsNonRoot; rn == nil || !*rn {
					t.Error("pod securityContext.runAsNonRoot is not true")
				}
				for _, c := range pod.Containers {
					if ro := c.SecurityContext.ReadOnlyRootFilesystem; ro == nil || !*ro {
						t.Error("container securityContext.readOnlyRootFilesystem is not true")
					}
				}
				for i := range js.Completions {
					tasks = append(tasks, shardTask{index: i, count: js.Completions,
						platformEnv: []string{"JOB_COMPLETION_INDEX=" + strconv.Itoa(i)}})
				}
			default:
				t.Fatalf("%s %s: the test does not know how this platform runs the container; teach it", m.APIVersion, m.Kind)
			}
			if len(pod.Containers) != 1 {
				t.Fatalf("%d containers, want 1", len(pod.Containers))
			}
			c := pod.Containers[0]
			if len(c.Args) == 0 || c.Args[0] != "run" {
				t.Fatalf("args %q do not start with the run command", c.Args)
			}
			secretMounts := map[string]bool{}
			for _, v := range pod.Volumes {
				if v.Secret == nil {
					continue
				}
				for _, vm := range c.VolumeMounts {
					if vm.Name == v.Name {
						secretMounts[vm.MountPath] = true
					}
				}
			}
			args, env := localize(t, f, c, secretMounts)
			for _, task := range tasks {
				r := f.exec(t, append(env, task.platformEnv...), append(args, "--out", t.TempDir(), "--dry-run")...)
				if r.code != 0 || r.signal != 0 {
					t.Fatalf("shard %d: extract %s: %s", task.index, strings.Join(args, " "), r)
				}
				want := fmt.Sprintf("shard %d of %d ", task.index, task.count)
				if !strings.Contains(r.stdout, want) {
					t.Errorf("shard %d: plan does not say %q:\n%s", task.index, want, r.stdout)
				}
			}
		})
	}
}

// localize turns a container's args and env into ones that run here: --out
// gs://… is dropped (the caller passes a temp dir), a tokens file on a secret
// volume becomes the fake's tokens file, AKAHU_APP_TOKEN from a secret becomes the
// fake's app token. Anything else is passed exactly as the manifest sets it.
func localize(t *testing.T, f *fakeAkahu, c container, secretMounts map[string]bool) (args, env []string) {
	t.Helper()
	in := c.Args
	var sawOut, sawTokens bool
	for i := 0; i < len(in); i++ {
		a := in[i]
		name, val, hasVal := strings.Cut(a, "=")
		takesVal := name == "--out" || name == "--user-tokens-file"
		if takesVal && !hasVal {
			if i+1 >= len(in) {
				t.Fatalf("args end with %s and no value", a)
			}
			i++
			val = in[i]
		}
		switch name {
		case "--out":
			if !strings.HasPrefix(val, "gs://") {
				t.Errorf("--out %q is not a gs:// URL (the container has no writable disk)", val)
			}
			sawOut = true
		case "--user-tokens-file":
			mounted := false
			for mp := range secretMounts {
				mounted = mounted || strings.HasPrefix(val, strings.TrimSuffix(mp, "/")+"/")
			}
			if !mounted {
				t.Errorf("--user-tokens-file %s is not on a mounted secret volume", val)
			}
			args = append(args, "--user-tokens-file", f.tokens)
			sawTokens = true
		default:
			args = append(args, a)
		}
	}
	if !sawOut || !sawTokens {
		t.Errorf("args %q lack --out or --user-tokens-file", in)
	}
	var appToken bool
	for _, e := range c.Env {
		switch {
		case e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil:
			if e.Name != "AKAHU_APP_TOKEN" {
				t.Errorf("env %s from a secret: the test knows only AKAHU_APP_TOKEN", e.Name)
				continue
			}
			appToken = true
			env = append(env, "AKAHU_APP_TOKEN="+f.srv.AppToken())
		case e.Name == "AKAHU_APP_TOKEN" || e.Name == "AKAHU_USER_TOKEN":
			t.Errorf("env %s is set in plain text; it must come from a secret", e.Name)
		default:
			env = append(env, e.Name+"="+e.Value)
		}
	}
	if !appToken {
		t.Error("AKAHU_APP_TOKEN is not set from a secret")
	}
	return args, env
}

// flagValue is the value of flag name in args (--name v or --name=v), or "".
func flagValue(args []string, name string) string {
	for i, a := range args {
		if a == name && i+1 < len(args) {
			return args[i+1]
		}
		if v, ok := strings.CutPrefix(a, name+"="); ok {
			return v
		}
	}
	return ""
}

// TestDockerfile checks the Dockerfile's essentials textually (no container
// engine runs in the tests): a static build, a distroless nonroot final stage, the
// binary as the entrypoint; and that the scheduler script runs the Cloud Run Job
// the manifest names.
func TestDockerfile(t *testing.T) {
	data, err := os.ReadFile("../../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	df := string(data)
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`(?m)^FROM golang:1\.\S+ AS build$`),
		regexp.MustCompile(`CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o /out/extract \./cmd/extract`),
		regexp.MustCompile(`(?m)^FROM gcr\.io/distroless/static-debian12:nonroot$`),
		regexp.MustCompile(`(?m)^COPY --from=build /out/extract /extract$`),
		regexp.MustCompile(`(?m)^USER nonroot`),
		regexp.MustCompile(`(?m)^ENTRYPOINT \["/extract"\]$`),
	} {
		if !want.MatchString(df) {
			t.Errorf("Dockerfile does not match %s", want)
		}
	}

	sh, err := os.ReadFile(filepath.Join(deployDir, "scheduler.sh"))
	if err != nil {
		t.Fatal(err)
	}
	for name, m := range readManifests(t) {
		if m.APIVersion == "run.googleapis.com/v1" && m.Kind == "Job" {
			if want := "/jobs/" + m.Metadata.Name + ":run"; !strings.Contains(string(sh), want) {
				t.Errorf("deploy/scheduler.sh does not run the job of %s (%q)", name, want)
			}
		}
	}
}
