package api

import _ "embed" // the OpenAPI document ships in the binary

// OpenAPI is the OpenAPI (Swagger 2.0) document of the REST API that
// generate.sh makes of the protos (openapi/shrike.swagger.json), embedded
// so that a running server can serve it (at /v1/openapi.json).
//
//go:embed openapi/shrike.swagger.json
var OpenAPI []byte
