// Package faultproxy owns a small HTTP reverse proxy for tests that puts an
// unreliable network between a client and a server on loopback: it forwards
// each request to the target server, except that a seeded random draw per
// request injects one of these faults at configured per-kind rates:
//
//   - Unavailable: answers 503 without forwarding (the server never acts);
//   - Reset: resets the client's connection (TCP RST) without forwarding;
//   - LostAnswer: forwards the request, reads the server's whole answer (so
//     the server has acted), then closes the client's connection without
//     answering: the client sees EOF and cannot know whether it worked;
//   - Slow: forwards the request and delays the answer.
//
// Rules can be limited to some methods, to paths containing a string, and to
// a number of firings (to inject exactly one fault in a deterministic test).
// A Proxy counts requests, forwarded requests and each injected fault, and is
// safe for concurrent use. It only listens on 127.0.0.1.
package faultproxy
