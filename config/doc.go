// Package config reads the `serve` configuration file (docs/operations.md):
// Config, its defaults (DefaultConfig, taking the engine's own defaults
// from cep and feed) and its validation. LoadConfig decodes strictly with
// internal/yamlnode, so an unknown or misspelt key is an error at its line,
// and Validate reports every problem at once, each naming its key
// (Errors). A token's scopes are the API's scope names. The package
// does no I/O beyond reading the file: the command line turns a Config
// into engine, store, registry and API options.
package config
