#!/bin/sh
# Runs the Kafka Streams Nexmark baseline; see README.md. exec, so that the caller's pid is
# the JVM's. Build first: mvn -B -q -f bench/nexmark/kstreams/pom.xml package -DskipTests
#
# The grace of the event-time windows is 60 s, not the 4 s watermark delay of Flink and
# Weir: Kafka Streams has no watermarks, and catching up on the benchmark's preloaded
# input its two input tasks drift up to ~11 s apart, so with 4 s it drops records and its
# results differ (README.md, "Grace and skew"). NEXMARK_KS_GRACE_MS sets another grace;
# JAVA_OPTS comes last and overrides anything.
dir=$(cd "$(dirname "$0")" && pwd)
exec java -Dnexmark.graceMs="${NEXMARK_KS_GRACE_MS:-60000}" -Xms256m -Xmx1g -XX:+UseParallelGC $JAVA_OPTS \
  -cp "$dir/target/nexmark-kstreams.jar:$dir/target/lib/*" dev.weir.bench.kstreams.Main "$@"
