// Package deploy holds the deployment assets for Weir jobs: the Grafana
// dashboard and provisioning files, the Prometheus configuration for the
// local stack and example Kubernetes manifests. The repository's
// docker-compose.yml and Dockerfile use them.
//
// The package has no code of its own. Its tests check the assets: that
// docker-compose.yml loads and validates with compose-go (the library behind
// `docker compose`) and is wired consistently, that the dashboard queries
// only metrics the engine exports, that the Kubernetes manifests decode
// strictly into the k8s.io/api types and are wired consistently (probes,
// resources, the ConfigMap, the Secret mounted as files, the disruption
// budget), and that a real Prometheus, with prometheus.yml and the alert
// rules, scrapes a running job.
package deploy
