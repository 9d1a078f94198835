// Package deploy holds the deployment assets for Weir jobs: the Grafana
// dashboard and provisioning files, the Prometheus configuration for the
// local stack and example Kubernetes manifests. The repository's
// docker-compose.yml and Dockerfile use them.
//
// The package has no code of its own. Its tests check the assets: that
// docker-compose.yml loads and validates with compose-go (the library behind
// `docker compose`) and is wired consistently, that the dashboard queries
// only metrics the engine exports, and that the Kubernetes manifests parse
// and probe the right endpoints.
package deploy
