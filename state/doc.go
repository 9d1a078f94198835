// Package state will own keyed state: value, map, list and aggregating
// state scoped to (task, operator, key, namespace), kept in Pebble behind a
// write-back cache and restored from compacted changelog topics.
//
// It must never let the local store run ahead of Kafka: nothing reaches
// Pebble before the checkpoint that covers it has committed in Kafka.
package state
