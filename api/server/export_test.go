package server

// AlertConversions counts alertProto's conversions, for the tests of
// package server_test.
func AlertConversions() int64 { return alertConversions.Load() }

// ListRecordings is listRecordings, for the tests of its scan bound.
var ListRecordings = listRecordings
