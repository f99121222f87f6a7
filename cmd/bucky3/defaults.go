package main

// defaultConfig runs when bucky3 gets no configuration file: a StatsD
// server on localhost and host metrics, exposed for Prometheus on port 9103.
const defaultConfig = `
flush_interval = 10
metadata = {env = "default-config"}

[statsd_server]
module_type = "statsd_server"
local_host = "127.0.0.1:8125"
percentile_thresholds = [50, 90, 100]
# Flush on the interval from the start: the quick start expects a gauge
# sent with nc to show up within one interval.
randomize_startup = false

[linux_stats]
module_type = "linux_stats"
# Collect at once, so a first scrape right after start already has data.
randomize_startup = false

[prometheus_exporter]
module_type = "prometheus_exporter"
local_host = "0.0.0.0:9103"
flush_interval = 5
values_timeout = 14
`
