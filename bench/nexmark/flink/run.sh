#!/bin/sh
# Runs one Nexmark query on Apache Flink 2.2 (a local mini cluster in this JVM).
# Arguments: see README.md. The JVM replaces this shell (exec), so its pid is the job's.
# The heap policy and collector are Kafka Streams' (../kstreams/run.sh): -Xms256m -Xmx1g,
# the parallel collector. JAVA_OPTS comes last and overrides anything.
dir=$(cd "$(dirname "$0")" && pwd)
exec java -Xms256m -Xmx1g -XX:MaxDirectMemorySize=512m -XX:+UseParallelGC $JAVA_OPTS \
  --add-opens=java.base/java.lang=ALL-UNNAMED \
  --add-opens=java.base/java.util=ALL-UNNAMED \
  --add-opens=java.base/java.util.concurrent=ALL-UNNAMED \
  --add-opens=java.base/java.lang.reflect=ALL-UNNAMED \
  --add-opens=java.base/java.io=ALL-UNNAMED \
  --add-opens=java.base/java.nio=ALL-UNNAMED \
  --add-opens=java.base/sun.nio.ch=ALL-UNNAMED \
  --add-opens=java.base/java.net=ALL-UNNAMED \
  --add-opens=java.base/java.time=ALL-UNNAMED \
  --add-opens=java.base/java.text=ALL-UNNAMED \
  --add-opens=java.sql/java.sql=ALL-UNNAMED \
  -cp "$dir/target/nexmark-flink.jar:$dir/target/lib/*" dev.weir.bench.flink.Main "$@"
