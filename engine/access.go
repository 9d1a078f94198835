package engine

// This file checks, at start, that the cluster lets the replica do what
// the job needs (ACLs), and turns an authorization error Kafka returns
// later into one that says which permission is missing and how to grant
// it.

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// ErrNotAuthorized is wrapped by the error a job stops with when the
// cluster's ACLs refuse it something it needs.
var ErrNotAuthorized = errors.New("not authorized")

// permission is one ACL a job needs: operations on a resource.
type permission struct {
	kind     string // topic, group, transactional-id, cluster
	name     string
	grant    string // the name (or prefix) to grant, if not name
	ops      []kmsg.ACLOperation
	why      string
	prefixed bool // the ACL to grant is better given by prefix
}

// aclFlag is kafka-acls' flag for the resource kind.
func (p permission) aclFlag() string {
	name := p.name
	if p.grant != "" {
		name = p.grant
	}
	switch p.kind {
	case "transactional-id":
		return "--transactional-id " + name
	case "cluster":
		return "--cluster"
	}
	return "--" + p.kind + " " + name
}

// missing returns the error for the operations of p the principal lacks.
func (rt *runtime) missing(p permission, lack []kmsg.ACLOperation) error {
	principal := rt.cfg.security.Principal()
	shown := principal
	if shown == "" {
		shown = "the replica's principal"
		principal = "<principal>"
	}
	var names, flags []string
	for _, op := range lack {
		names = append(names, aclOpName(op))
		flags = append(flags, "--operation "+aclOpName(op))
	}
	pattern := ""
	if p.prefixed {
		pattern = " --resource-pattern-type prefixed"
	}
	return fmt.Errorf("%w: %s needs %s on %s %q (%s); grant it with: kafka-acls.sh --bootstrap-server <brokers> --add --allow-principal %s %s %s%s",
		ErrNotAuthorized, shown, strings.Join(names, ", "), p.kind, p.name, p.why,
		principal, strings.Join(flags, " "), p.aclFlag(), pattern)
}

// aclOpName is an operation as kafka-acls spells it (Read, IdempotentWrite).
func aclOpName(op kmsg.ACLOperation) string {
	var b strings.Builder
	for _, w := range strings.Split(strings.ToLower(op.String()), "_") {
		if w != "" {
			b.WriteString(strings.ToUpper(w[:1]) + w[1:])
		}
	}
	return b.String()
}

// permissions lists what the job needs of the cluster.
func (rt *runtime) permissions() []permission {
	var ps []permission
	for _, t := range rt.job.userSourceTopics() {
		ps = append(ps, permission{kind: "topic", name: t, ops: []kmsg.ACLOperation{kmsg.ACLOperationRead}, why: "a source: the job reads it"})
	}
	for _, t := range slices.Sorted(maps.Keys(rt.job.sinks)) {
		why := "a sink: the job writes its outputs there"
		if t == rt.job.dlq.name {
			why = "the dead-letter topic"
		}
		ps = append(ps, permission{kind: "topic", name: t, ops: []kmsg.ACLOperation{kmsg.ACLOperationWrite}, why: why})
	}
	for _, it := range rt.job.internal {
		ps = append(ps, permission{kind: "topic", name: it.name, grant: rt.cfg.Group + "-", prefixed: true,
			ops: []kmsg.ACLOperation{kmsg.ACLOperationRead, kmsg.ACLOperationWrite},
			why: "an internal topic of the job (repartition, changelog or late data); grant the prefix " + rt.cfg.Group + "-"})
	}
	ps = append(ps, permission{kind: "group", name: rt.cfg.Group, ops: []kmsg.ACLOperation{kmsg.ACLOperationRead}, why: "the job's consumer group"})
	return ps
}

// checkAccess asks the cluster what the replica's principal may do on the
// job's topics and group (Metadata and DescribeGroups with authorized
// operations, KIP-430) and stops the job at start, naming the first
// permission it lacks. A cluster without an authorizer allows everything;
// one that does not report operations is not checked here (authorization
// errors Kafka returns later are explained by explainAuth). Topics that do
// not exist yet are checked by their creation.
func (rt *runtime) checkAccess(ctx context.Context, cl *kgo.Client) error {
	ps := rt.permissions()
	req := kmsg.NewPtrMetadataRequest()
	req.IncludeTopicAuthorizedOperations = true
	for _, p := range ps {
		if p.kind == "topic" {
			t := kmsg.NewMetadataRequestTopic()
			t.Topic = kmsg.StringPtr(p.name)
			req.Topics = append(req.Topics, t)
		}
	}
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return fmt.Errorf("checking the job's permissions: %w", err)
	}
	topicOps := map[string]int32{}
	topicErr := map[string]int16{}
	for _, t := range resp.Topics {
		if t.Topic != nil {
			topicOps[*t.Topic], topicErr[*t.Topic] = t.AuthorizedOperations, t.ErrorCode
		}
	}
	var groupOps int32 = math.MinInt32
	var groupErr int16
	greq := kmsg.NewPtrDescribeGroupsRequest()
	greq.Groups = []string{rt.cfg.Group}
	greq.IncludeAuthorizedOperations = true
	switch gresp, err := greq.RequestWith(ctx, cl); {
	case errors.Is(err, kerr.GroupAuthorizationFailed):
		// Finding the group's coordinator needs Describe on the group.
		groupErr = kerr.GroupAuthorizationFailed.Code
	case err == nil && len(gresp.Groups) == 1:
		groupOps, groupErr = gresp.Groups[0].AuthorizedOperations, gresp.Groups[0].ErrorCode
	}
	for _, p := range ps {
		ops, code := topicOps[p.name], topicErr[p.name]
		if p.kind == "group" {
			ops, code = groupOps, groupErr
		}
		switch {
		case code == kerr.TopicAuthorizationFailed.Code || code == kerr.GroupAuthorizationFailed.Code:
			return rt.missing(p, p.ops) // not even Describe, which each implies
		case code != 0 || ops == math.MinInt32:
			continue // unknown topic (created later), or not reported
		}
		var lack []kmsg.ACLOperation
		for _, op := range p.ops {
			if ops&(1<<int32(op)) == 0 {
				lack = append(lack, op)
			}
		}
		if len(lack) > 0 {
			return rt.missing(p, lack)
		}
	}
	return nil
}

// isAuthorization reports whether err is Kafka refusing an ACL.
func isAuthorization(err error) bool {
	return errors.Is(err, kerr.TopicAuthorizationFailed) || errors.Is(err, kerr.GroupAuthorizationFailed) ||
		errors.Is(err, kerr.TransactionalIDAuthorizationFailed) || errors.Is(err, kerr.ClusterAuthorizationFailed)
}

// explainAuth adds, to an error that wraps one of Kafka's authorization
// errors, the permission it means and the README's list of ACLs; other
// errors it returns unchanged. Kafka names the resource in its message
// only sometimes.
func (rt *runtime) explainAuth(err error) error {
	if err == nil || errors.Is(err, ErrNotAuthorized) {
		return err
	}
	principal := rt.cfg.security.Principal()
	if principal == "" {
		principal = "the replica's principal"
	}
	var p permission
	switch {
	case errors.Is(err, kerr.TransactionalIDAuthorizationFailed):
		p = permission{kind: "transactional-id", name: rt.cfg.Group + "-", prefixed: true,
			ops: []kmsg.ACLOperation{kmsg.ACLOperationWrite, kmsg.ACLOperationDescribe}, why: "exactly once: each replica's transactional id is <group>-<replica id>"}
	case errors.Is(err, kerr.GroupAuthorizationFailed):
		p = permission{kind: "group", name: rt.cfg.Group, ops: []kmsg.ACLOperation{kmsg.ACLOperationRead}, why: "the job's consumer group"}
	case errors.Is(err, kerr.ClusterAuthorizationFailed):
		p = permission{kind: "cluster", name: "kafka-cluster", ops: []kmsg.ACLOperation{kmsg.ACLOperationIdempotentWrite}, why: "idempotent writes (or Create, for the internal topics)"}
	case errors.Is(err, kerr.TopicAuthorizationFailed):
		return fmt.Errorf("%w: %s may not use a topic the job reads or writes (%w); the README's Security section lists the ACLs a job needs", ErrNotAuthorized, principal, err)
	default:
		return err
	}
	return fmt.Errorf("%w (%w)", rt.missing(p, p.ops), err)
}
