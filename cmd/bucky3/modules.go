package main

import (
	"github.com/bucky3/bucky3/collectors/docker"
	"github.com/bucky3/bucky3/collectors/journal"
	"github.com/bucky3/bucky3/collectors/jsond"
	"github.com/bucky3/bucky3/collectors/linux"
	"github.com/bucky3/bucky3/collectors/statsd"
	"github.com/bucky3/bucky3/engine"
	"github.com/bucky3/bucky3/exporters/carbon"
	"github.com/bucky3/bucky3/exporters/debug"
	"github.com/bucky3/bucky3/exporters/elasticsearch"
	"github.com/bucky3/bucky3/exporters/influxdb"
	"github.com/bucky3/bucky3/exporters/otlp"
	"github.com/bucky3/bucky3/exporters/prometheus"
	"github.com/bucky3/bucky3/exporters/remotewrite"
)

// moduleTypes maps each module_type to its package.
var moduleTypes = []engine.Type{
	engine.SourceType("statsd_server", statsd.DefaultOptions, statsd.New),
	engine.SourceType("jsond_server", jsond.DefaultOptions, jsond.New),
	engine.SourceType("linux_stats", linux.DefaultOptions, linux.New),
	engine.SourceType("docker_stats", docker.DefaultOptions, docker.New),
	engine.SourceType("systemd_journal", journal.DefaultOptions, journal.New),
	engine.DestinationType("prometheus_exporter", prometheus.DefaultOptions, prometheus.New),
	engine.DestinationType("influxdb_client", influxdb.DefaultOptions, influxdb.New),
	engine.DestinationType("elasticsearch_client", elasticsearch.DefaultOptions, elasticsearch.New),
	engine.DestinationType("carbon_client", carbon.DefaultOptions, carbon.New),
	engine.DestinationType("remote_write_client", remotewrite.DefaultOptions, remotewrite.New),
	engine.DestinationType("otlp_client", otlp.DefaultOptions, otlp.New),
	engine.DestinationType("debug_output", debug.DefaultOptions, debug.New),
}
