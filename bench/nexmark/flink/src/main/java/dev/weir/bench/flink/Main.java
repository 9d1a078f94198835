package dev.weir.bench.flink;

import java.io.File;
import java.lang.management.ManagementFactory;
import java.time.Duration;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;

import org.apache.flink.api.common.JobStatus;
import org.apache.flink.configuration.CheckpointingOptions;
import org.apache.flink.configuration.Configuration;
import org.apache.flink.configuration.CoreOptions;
import org.apache.flink.configuration.PipelineOptions;
import org.apache.flink.configuration.RestartStrategyOptions;
import org.apache.flink.configuration.StateBackendOptions;
import org.apache.flink.core.execution.CheckpointingMode;
import org.apache.flink.core.execution.JobClient;
import org.apache.flink.streaming.api.environment.StreamExecutionEnvironment;
import org.apache.flink.table.api.EnvironmentSettings;
import org.apache.flink.table.api.TableResult;
import org.apache.flink.table.api.bridge.java.StreamTableEnvironment;
import org.apache.flink.table.api.config.TableConfigOptions;

/**
 * Runs one Nexmark query as Flink SQL on a local mini cluster inside this JVM, reading the
 * Nexmark topic and writing the query's results to another topic, until SIGTERM or SIGINT.
 *
 * <p>Exit status: 0 when stopped by a signal, 1 when the job fails (the exception on stderr), 2
 * on a bad command line.
 */
public final class Main {
    private Main() {}

    static final String USAGE =
            "usage: run.sh --brokers HOST:PORT --query q0|q1|q2|q3|q5|q7|q8|q11|q12 --input TOPIC"
                    + " --output TOPIC --group GROUP --guarantee exactly-once|at-least-once"
                    + " --interval-ms N --parallelism N --state-dir DIR [--producer-batch-bytes N]"
                    + " [--producer-linger-ms N] [--producer-compression none|gzip|snappy|lz4|zstd]";

    private static volatile boolean stopping;
    private static volatile JobClient job;

    public static void main(String[] args) {
        Args a;
        try {
            a = Args.parse(args);
        } catch (IllegalArgumentException e) {
            System.err.println("nexmark-flink: " + e.getMessage());
            System.err.println(USAGE);
            System.exit(2);
            return;
        }
        installSignalHandlers();
        try {
            run(a);
        } catch (Throwable t) {
            if (stopping) {
                System.exit(0);
            }
            System.err.println("nexmark-flink: " + a.query + " failed:");
            t.printStackTrace(System.err);
            System.exit(1);
        }
        System.exit(0);
    }

    static void run(Args a) throws Exception {
        Configuration conf = new Configuration();
        conf.set(CoreOptions.DEFAULT_PARALLELISM, a.parallelism);
        conf.set(CheckpointingOptions.CHECKPOINTING_INTERVAL, Duration.ofMillis(a.intervalMs));
        conf.set(
                CheckpointingOptions.CHECKPOINTING_CONSISTENCY_MODE,
                a.exactlyOnce ? CheckpointingMode.EXACTLY_ONCE : CheckpointingMode.AT_LEAST_ONCE);
        conf.set(StateBackendOptions.STATE_BACKEND, "hashmap");
        conf.set(CheckpointingOptions.CHECKPOINT_STORAGE, "filesystem");
        conf.set(
                CheckpointingOptions.CHECKPOINTS_DIRECTORY,
                new File(a.stateDir, "checkpoints").getAbsoluteFile().toURI().toString());
        // A failure ends the job, and the process with status 1, rather than being retried
        // quietly: the benchmark wants to see it.
        conf.set(RestartStrategyOptions.RESTART_STRATEGY, "none");
        // SQL operators copy what they keep, so reusing records between chained operators is safe.
        conf.set(PipelineOptions.OBJECT_REUSE, true);
        conf.set(TableConfigOptions.LOCAL_TIME_ZONE, "UTC");
        // For experiments only: extra cluster and job options, "key=value;key=value" (e.g.
        // rest.port=8081 to read the task metrics over the mini cluster's REST API).
        for (String[] kv : pairs(System.getenv("NEXMARK_FLINK_CONF"))) {
            conf.setString(kv[0], kv[1]);
        }

        StreamExecutionEnvironment env =
                StreamExecutionEnvironment.createLocalEnvironment(a.parallelism, conf);
        StreamTableEnvironment tEnv =
                StreamTableEnvironment.create(
                        env, EnvironmentSettings.newInstance().inStreamingMode().build());
        tEnv.getConfig().set(TableConfigOptions.LOCAL_TIME_ZONE, "UTC");
        // For experiments only: extra table options, "key=value;key=value".
        for (String[] kv : pairs(System.getenv("NEXMARK_FLINK_SET"))) {
            tEnv.getConfig().set(kv[0], kv[1]);
        }

        Queries.Sql sql = Queries.build(a);
        for (String ddl : sql.ddl) {
            tEnv.executeSql(ddl);
        }
        if (System.getenv("NEXMARK_FLINK_EXPLAIN") != null) {
            System.err.println(tEnv.explainSql(sql.insert));
        }
        if (stopping) {
            return;
        }
        TableResult result = tEnv.executeSql(sql.insert);
        job = result.getJobClient().orElseThrow();
        if (stopping) {
            cancel();
            return;
        }
        if (System.getenv("NEXMARK_FLINK_STARTUP") != null) {
            reportStartup(a.query);
        }
        result.await();
    }

    /** "key=value;key=value" as [key, value] pairs; none for null or blank. */
    static java.util.List<String[]> pairs(String s) {
        java.util.List<String[]> out = new java.util.ArrayList<>();
        if (s == null || s.isBlank()) {
            return out;
        }
        for (String kv : s.split(";")) {
            int eq = kv.indexOf('=');
            if (eq > 0) {
                out.add(new String[] {kv.substring(0, eq).trim(), kv.substring(eq + 1).trim()});
            }
        }
        return out;
    }

    /** Prints, on stderr, how long after the JVM started the job's tasks were all running. */
    private static void reportStartup(String query) {
        Thread t =
                new Thread(
                        () -> {
                            try {
                                while (!stopping) {
                                    JobStatus s = job.getJobStatus().get();
                                    if (s == JobStatus.RUNNING) {
                                        break;
                                    }
                                    if (s.isTerminalState()) {
                                        return;
                                    }
                                    Thread.sleep(10);
                                }
                                long ms =
                                        System.currentTimeMillis()
                                                - ManagementFactory.getRuntimeMXBean()
                                                        .getStartTime();
                                System.err.printf(
                                        "nexmark-flink: %s job running %d ms after JVM start%n",
                                        query, ms);
                            } catch (Exception e) {
                                // only a report
                            }
                        },
                        "startup-report");
        t.setDaemon(true);
        t.start();
    }

    private static void installSignalHandlers() {
        sun.misc.SignalHandler h =
                sig -> {
                    if (stopping) {
                        return;
                    }
                    stopping = true;
                    Thread t =
                            new Thread(
                                    () -> {
                                        cancel();
                                        System.exit(0);
                                    },
                                    "nexmark-flink-stop");
                    t.start();
                };
        sun.misc.Signal.handle(new sun.misc.Signal("TERM"), h);
        sun.misc.Signal.handle(new sun.misc.Signal("INT"), h);
    }

    /** Cancels the job, if there is one, waiting up to 30 s for it to end. */
    private static void cancel() {
        JobClient j = job;
        if (j == null) {
            return;
        }
        try {
            j.cancel().get(30, TimeUnit.SECONDS);
            // Wait for the job (and with it the per-job mini cluster) to wind down.
            for (int i = 0; i < 300; i++) {
                JobStatus s;
                try {
                    s = j.getJobStatus().get(1, TimeUnit.SECONDS);
                } catch (Exception e) {
                    break; // the per-job mini cluster has shut down with the job
                }
                if (s.isGloballyTerminalState()) {
                    break;
                }
                Thread.sleep(100);
            }
        } catch (ExecutionException | IllegalStateException e) {
            // Already ended, or the cluster is gone: either way nothing more to stop.
        } catch (Exception e) {
            System.err.println("nexmark-flink: cancelling the job: " + e);
        }
    }
}
