// Package operators holds every operator a job is built from, each a
// function from streams to a stream, written against the engine's
// operator interface (engine/operator.go) like any third party's would be
// (see the Dedup example):
//
//   - per record, stateless: Map, Filter, FlatMap (operators.go), with the
//     Invalid option routing failures to a side output;
//   - keying: KeyBy (a repartition through an internal topic),
//     KeyByRecordKey (no move), KeyByBoth (two streams into one stage, for
//     joins) (keyby.go);
//   - keyed, with state and timers: Process and its KeyedProcessFunction,
//     which see a Context (the key, times, timers, state, side outputs) and
//     a Collector (process.go, keyed.go);
//   - windows: WindowAggregate (an accumulator per key and window, from a
//     state.AggregateFunction) and WindowProcess (every record, to a
//     ProcessWindowFunction), over the assigners and triggers of package
//     windowing, with the options AllowedLateness, WithTrigger, LateOutput
//     and LateTopic (window.go);
//   - joins: IntervalJoin (by key and time, bounds as Flink's, with
//     LowerBoundExclusive, UpperBoundExclusive), WindowJoin (every pair of
//     a key per window), both with JoinCodecs; JoinTable (each record with
//     the latest value of its key in a table topic) (intervaljoin.go,
//     windowjoin.go, tablejoin.go).
//
// Sources and sinks are in package connectors; the job, its configuration,
// streams, side-output tags (engine.OutputTag, engine.SideOutput) and
// error policies (engine.OnError) in package engine.
//
// An operator's name is where its state, changelog topic and metrics live:
// give stateful operators stable names, and each its own (a second
// operator of one name fails the job at start). Operators the user need
// not name (map, keyby) take numbered defaults.
package operators
