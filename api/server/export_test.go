package server

// AlertConversions counts alertProto's conversions, for the tests of
// package server_test.
func AlertConversions() int64 { return alertConversions.Load() }
