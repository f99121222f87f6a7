// Package engine holds bucky3's data model and the machinery that runs
// modules: configuration loading, the module registry, the router that fans
// batches out from sources to destinations, the supervisor that restarts
// failing modules and orchestrates shutdown, and the self report.
//
// engine imports no module package; cmd/bucky3 wires module types in.
package engine
