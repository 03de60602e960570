#!/bin/sh
# Triggers the Cloud Run Job of deploy/cloudrun-job.yaml daily at 03:00 Pacific/
# Auckland through Cloud Scheduler. Documentation: read it, set the variables and
# run it once by hand; nothing runs it automatically. The service account needs
# roles/run.invoker on the job.
set -eu
PROJECT=${PROJECT:?set PROJECT}
REGION=${REGION:?set REGION}
SA=${SA:-akahu-extract-scheduler@$PROJECT.iam.gserviceaccount.com}

gcloud scheduler jobs create http akahu-extract-daily \
  --project "$PROJECT" \
  --location "$REGION" \
  --schedule "0 3 * * *" \
  --time-zone "Pacific/Auckland" \
  --http-method POST \
  --uri "https://run.googleapis.com/v2/projects/$PROJECT/locations/$REGION/jobs/akahu-extract:run" \
  --oauth-service-account-email "$SA"
