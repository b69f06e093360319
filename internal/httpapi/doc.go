// Package httpapi is what every HTTP API of a node shares: bearer-token
// checks by role, the one error shape ({"code": "...", "message": "..."},
// codes listed in docs/http.md), and the route table every handler
// registers through, so the node can say which routes it serves
// (docs/http.md and docs/openapi.yaml are checked against it).
//
// httpapi imports room (for the Role type) and nothing else of the
// project: token verification is signaling's, handed in as a Verifier
// by cmd, so that the packages serving APIs (audit, cluster, record) can
// use httpapi without importing signaling.
package httpapi
