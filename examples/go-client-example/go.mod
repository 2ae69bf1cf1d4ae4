module github.com/datacat/datacat/examples/go-client-example

go 1.19

require github.com/datacat/datacat/clients/go v0.0.0-00010101000000-000000000000

// Built from this repository: no download.
replace github.com/datacat/datacat/clients/go => ../../clients/go
