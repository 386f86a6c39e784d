// Package metricsweb serves the /metrics endpoint of lifeboat-agent and
// lifeboat-server with an optional web configuration file
// (--web-config-file) in the Prometheus exporters' format, read by
// github.com/prometheus/exporter-toolkit: TLS (tls_server_config, client
// certificates included), HTTP basic authentication (basic_auth_users,
// bcrypt hashes) and response headers. Without a file the endpoint is
// plain HTTP, as before.
//
// It owns checking that file before anything starts and serving a
// listener with it; it must never decide what the metrics are, nor
// read the file's secrets anywhere but through the toolkit. The toolkit
// reads the file again at each request and connection, so certificates
// and users can be changed without a restart.
package metricsweb
