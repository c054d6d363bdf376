#!/usr/bin/env bash
# Regenerates the API's code and OpenAPI document from api/shrike/v1/*.proto:
#
#   api/shrike/v1/*.pb.go, *_grpc.pb.go, *.pb.gw.go   (protoc-gen-go, -go-grpc, -grpc-gateway)
#   api/openapi/shrike.swagger.json                   (protoc-gen-openapiv2)
#
# Usage: api/generate.sh [OUT]
#   OUT defaults to api/ itself, whose old generated files are removed first;
#   api/generate_test.go passes a temporary folder and compares.
#
# Needs protoc (Debian: apt-get install -y protobuf-compiler, 3.21.12) and Go;
# every imported proto is vendored under third_party/ (googleapis, and the
# protobuf well-known types that Debian ships only in libprotobuf-dev).
# The plugins are the tool versions pinned in go.mod, built here, so that
# everyone generates the same code. With buf on PATH (or $BUF), the protos
# are linted too (api/buf.yaml).
set -euo pipefail

api=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$api")
out=${1:-$api}
mkdir -p "$out"
out=$(cd "$out" && pwd)

command -v protoc >/dev/null || {
	echo "generate.sh: protoc not found (apt-get install -y protobuf-compiler)" >&2
	exit 1
}

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# go build, not go tool: protoc needs executables, and one build of the four
# is faster than four `go tool` wrappers.
(cd "$root" && go build -o "$tmp/bin/" \
	google.golang.org/protobuf/cmd/protoc-gen-go \
	google.golang.org/grpc/cmd/protoc-gen-go-grpc \
	github.com/grpc-ecosystem/grpc-gateway/v2/protoc-gen-grpc-gateway \
	github.com/grpc-ecosystem/grpc-gateway/v2/protoc-gen-openapiv2)

cd "$api"
protos=(shrike/v1/*.proto)
includes=(-I . -I ../third_party/googleapis -I ../third_party/protobuf)

if [[ "$out" == "$api" ]]; then
	# A removed or renamed proto must not leave its old code behind.
	rm -f shrike/v1/*.pb.go shrike/v1/*.pb.gw.go openapi/shrike.swagger.json
fi
mkdir -p "$out/openapi"

protoc "${includes[@]}" \
	--plugin=protoc-gen-go="$tmp/bin/protoc-gen-go" \
	--plugin=protoc-gen-go-grpc="$tmp/bin/protoc-gen-go-grpc" \
	--plugin=protoc-gen-grpc-gateway="$tmp/bin/protoc-gen-grpc-gateway" \
	--plugin=protoc-gen-openapiv2="$tmp/bin/protoc-gen-openapiv2" \
	--go_out="$out" --go_opt=paths=source_relative \
	--go-grpc_out="$out" --go-grpc_opt=paths=source_relative \
	--grpc-gateway_out="$out" --grpc-gateway_opt=paths=source_relative,omit_package_doc=true \
	--openapiv2_out="$out/openapi" \
	--openapiv2_opt=allow_merge=true,merge_file_name=shrike \
	--openapiv2_opt=openapi_naming_strategy=simple \
	--openapiv2_opt=openapi_configuration=openapiv2.yaml \
	--openapiv2_opt=preserve_rpc_order=true \
	"${protos[@]}"

buf=${BUF:-$(command -v buf || true)}
if [[ -n "$buf" ]]; then
	protoc "${includes[@]}" --include_imports --include_source_info \
		-o "$tmp/shrike.binpb" "${protos[@]}"
	"$buf" lint "$tmp/shrike.binpb" --config buf.yaml
fi
