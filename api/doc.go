// Package api holds the definition of Shrike's gRPC and REST API (README.md in
// this folder): the protobuf sources under shrike/v1, the Go code generated from them
// (package shrikev1), and the OpenAPI document under openapi/. It has no code
// of its own; its test checks that the committed generated files are what
// generate.sh makes of the protos, so that `go build` never needs protoc and
// the generated code never drifts from its source.
//
// The contract lives in the protos and README.md: every REST path of
// README.md, JSON field names equal to the proto names (the alert JSON of
// docs/design.md#alerts), errors per AIP-193, and the bearer-token scope of every RPC
// as the required_scope method option. The servers implementing it are not
// in this package: they import shrikev1, and README.md says what they must
// do to keep the contract.
package api
