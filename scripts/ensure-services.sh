#!/usr/bin/env bash
# Starts the local services the test suite talks to (PostgreSQL, Redis, NATS with JetStream) when
# they are not already answering, with the same commands this machine's images start them with.
# Idempotent; needs root for the start commands (as on CI and the developer machines).
set -uo pipefail

answers() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_for() {
    local name=$1 port=$2
    for _ in $(seq 1 100); do
        answers "$port" && return 0
        sleep 0.1
    done
    echo "ensure-services: $name did not come up on port $port" >&2
    return 1
}

status=0
if ! answers 5432; then
    echo "ensure-services: starting PostgreSQL" >&2
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
    wait_for PostgreSQL 5432 || status=1
fi
if ! answers 6379; then
    echo "ensure-services: starting Redis" >&2
    mkdir -p /var/lib/redis /var/log/redis
    redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
        --dir /var/lib/redis --logfile /var/log/redis/ci.log || true
    wait_for Redis 6379 || status=1
fi
if ! answers 4222; then
    echo "ensure-services: starting NATS with JetStream" >&2
    mkdir -p /var/lib/nats-server
    start-stop-daemon --start --oknodo --background --exec /usr/sbin/nats-server -- \
        -a 127.0.0.1 -p 4222 -js -sd /var/lib/nats-server -l /var/log/nats-server.log || true
    wait_for NATS 4222 || status=1
fi
exit $status
