package dev.weir.bench.flink;

import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Collections;
import java.util.HashMap;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.TreeMap;
import java.util.stream.Collectors;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.ListOffsetsResult;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.admin.OffsetSpec;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.errors.TopicExistsException;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;

/**
 * Helpers for checking the Flink baseline by hand, not part of the benchmark's contract:
 *
 * <pre>
 * java -cp 'target/nexmark-flink.jar:target/lib/*' dev.weir.bench.flink.Tools CMD ...
 *   create-topic BROKERS TOPIC PARTITIONS    create a topic (no error if it exists)
 *   dump BROKERS TOPIC [BEFORE_RFC3339] [ts]  the topic's committed records, values as JSON with
 *                                            sorted keys, sorted; only records timestamped
 *                                            before BEFORE; with "ts", the record timestamp too;
 *                                            with "raw", also partition and offset, unsorted
 *   advance BROKERS TOPIC RFC3339            write one bid at that time to every partition, to
 *                                            push the watermark past every earlier window
 *   wait BROKERS GROUP TOPIC T0_MS            poll GROUP's committed offsets on TOPIC until they
 *                                            reach its end; print ms since T0_MS of the first
 *                                            commit and of the last
 * </pre>
 */
public final class Tools {
    private Tools() {}

    private static boolean raw;

    public static void main(String[] args) throws Exception {
        if (args.length < 1) {
            usage();
        }
        switch (args[0]) {
            case "create-topic":
                if (args.length != 4) usage();
                createTopic(args[1], args[2], Integer.parseInt(args[3]));
                break;
            case "dump":
                if (args.length < 3 || args.length > 5) usage();
                Instant before = args.length >= 4 && !args[3].isEmpty() ? Instant.parse(args[3]) : null;
                boolean withTs = args.length == 5 && !args[4].isEmpty();
                raw = args.length == 5 && args[4].equals("raw");
                dump(args[1], args[2], before, withTs);
                break;
            case "advance":
                if (args.length != 4) usage();
                advance(args[1], args[2], Instant.parse(args[3]));
                break;
            case "wait":
                if (args.length != 5) usage();
                waitCommitted(args[1], args[2], args[3], Long.parseLong(args[4]));
                break;
            default:
                usage();
        }
    }

    private static void usage() {
        System.err.println(
                "usage: Tools create-topic BROKERS TOPIC PARTITIONS | dump BROKERS TOPIC [BEFORE]"
                        + " [ts] | wait BROKERS GROUP TOPIC T0_MS");
        System.exit(2);
    }

    static Admin admin(String brokers) {
        Properties p = new Properties();
        p.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, brokers);
        return Admin.create(p);
    }

    static void createTopic(String brokers, String topic, int partitions) throws Exception {
        try (Admin a = admin(brokers)) {
            a.createTopics(List.of(new NewTopic(topic, partitions, (short) 1))).all().get();
        } catch (java.util.concurrent.ExecutionException e) {
            if (!(e.getCause() instanceof TopicExistsException)) {
                throw e;
            }
        }
    }

    static void dump(String brokers, String topic, Instant before, boolean withTs) throws Exception {
        Properties p = new Properties();
        p.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, brokers);
        p.put(ConsumerConfig.ISOLATION_LEVEL_CONFIG, "read_committed");
        p.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        p.put(ConsumerConfig.MAX_POLL_RECORDS_CONFIG, "5000");
        ObjectMapper om = new ObjectMapper();
        List<String> lines = new ArrayList<>();
        try (KafkaConsumer<byte[], byte[]> c =
                new KafkaConsumer<>(p, new ByteArrayDeserializer(), new ByteArrayDeserializer())) {
            List<TopicPartition> tps =
                    c.partitionsFor(topic).stream()
                            .map(i -> new TopicPartition(topic, i.partition()))
                            .collect(Collectors.toList());
            c.assign(tps);
            c.seekToBeginning(tps);
            Map<TopicPartition, Long> end = c.endOffsets(tps);
            Map<TopicPartition, Long> pos = new HashMap<>();
            while (true) {
                boolean done = true;
                for (TopicPartition tp : tps) {
                    if (c.position(tp) < end.get(tp)) done = false;
                }
                if (done) break;
                for (ConsumerRecord<byte[], byte[]> r : c.poll(Duration.ofMillis(500))) {
                    if (before != null && r.timestamp() >= before.toEpochMilli()) continue;
                    JsonNode n = sortKeys(om.readTree(r.value()), om);
                    String s = om.writeValueAsString(n);
                    if (withTs) s = s + " ts=" + Instant.ofEpochMilli(r.timestamp());
                    if (raw) s = r.partition() + " " + r.offset() + " " + s;
                    lines.add(s);
                }
            }
        }
        if (!raw) Collections.sort(lines);
        StringBuilder b = new StringBuilder();
        for (String l : lines) b.append(l).append('\n');
        System.out.print(b);
    }

    private static JsonNode sortKeys(JsonNode n, ObjectMapper om) {
        if (!n.isObject()) return n;
        TreeMap<String, JsonNode> m = new TreeMap<>();
        for (Iterator<Map.Entry<String, JsonNode>> it = n.fields(); it.hasNext(); ) {
            Map.Entry<String, JsonNode> e = it.next();
            m.put(e.getKey(), sortKeys(e.getValue(), om));
        }
        ObjectNode o = om.createObjectNode();
        m.forEach(o::set);
        return o;
    }

    static void advance(String brokers, String topic, Instant t) throws Exception {
        Properties p = new Properties();
        p.put(org.apache.kafka.clients.producer.ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, brokers);
        String dt =
                java.time.format.DateTimeFormatter.ofPattern("yyyy-MM-dd HH:mm:ss.SSS")
                        .withZone(java.time.ZoneOffset.UTC)
                        .format(t);
        try (org.apache.kafka.clients.producer.KafkaProducer<byte[], byte[]> pr =
                new org.apache.kafka.clients.producer.KafkaProducer<>(
                        p,
                        new org.apache.kafka.common.serialization.ByteArraySerializer(),
                        new org.apache.kafka.common.serialization.ByteArraySerializer())) {
            int n = pr.partitionsFor(topic).size();
            for (int i = 0; i < n; i++) {
                String v =
                        "{\"event_type\":2,\"person\":null,\"auction\":null,\"bid\":{\"auction\":1,"
                                + "\"bidder\":1,\"price\":1,\"channel\":\"advance\",\"url\":\"advance\","
                                + "\"dateTime\":\""
                                + dt
                                + "\",\"extra\":\"\"}}";
                pr.send(
                                new org.apache.kafka.clients.producer.ProducerRecord<>(
                                        topic,
                                        i,
                                        t.toEpochMilli(),
                                        null,
                                        v.getBytes(java.nio.charset.StandardCharsets.UTF_8)))
                        .get();
            }
        }
    }

    static void waitCommitted(String brokers, String group, String topic, long t0) throws Exception {
        long first = -1;
        try (Admin a = admin(brokers)) {
            List<TopicPartition> tps =
                    a.describeTopics(List.of(topic)).allTopicNames().get().get(topic).partitions()
                            .stream()
                            .map(i -> new TopicPartition(topic, i.partition()))
                            .collect(Collectors.toList());
            Map<TopicPartition, OffsetSpec> latest = new HashMap<>();
            for (TopicPartition tp : tps) latest.put(tp, OffsetSpec.latest());
            Map<TopicPartition, ListOffsetsResult.ListOffsetsResultInfo> ends =
                    a.listOffsets(latest).all().get();
            long endSum = ends.values().stream().mapToLong(i -> i.offset()).sum();
            while (true) {
                Map<TopicPartition, OffsetAndMetadata> got =
                        a.listConsumerGroupOffsets(group).partitionsToOffsetAndMetadata().get();
                long sum = 0;
                for (TopicPartition tp : tps) {
                    OffsetAndMetadata o = got.get(tp);
                    if (o != null) sum += o.offset();
                }
                long now = System.currentTimeMillis();
                if (sum > 0 && first < 0) {
                    first = now - t0;
                    System.out.printf("first-commit %d ms (%d/%d)%n", first, sum, endSum);
                }
                if (sum >= endSum) {
                    System.out.printf("all-committed %d ms (%d)%n", now - t0, sum);
                    return;
                }
                Thread.sleep(50);
            }
        }
    }
}
