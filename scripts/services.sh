#!/usr/bin/env bash
# Starts (if not already running) every server the tests talk to, all on loopback:
# PostgreSQL, Redis, RabbitMQ (normally started with the machine), memcached, ZooKeeper
# and an OpenBao dev server. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
state=$PWD/.services
mkdir -p "$state"

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_port() {
    local name=$1 port=$2
    for _ in $(seq 1 120); do
        port_open "$port" && return 0
        sleep 0.5
    done
    echo "services: $name did not start on 127.0.0.1:$port" >&2
    return 1
}

if ! port_open 5432; then
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql)" main start || true
    wait_port postgresql 5432
fi
if ! port_open 6379; then
    redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
        --dir /var/lib/redis --logfile /var/log/redis/ci.log
    wait_port redis 6379
fi
if ! port_open 5672; then
    rabbitmq-server -detached || true
    wait_port rabbitmq 5672
fi
if ! port_open 11211; then
    memcached -d -u root -l 127.0.0.1 -p 11211 -m 64 -P "$state/memcached.pid"
    wait_port memcached 11211
fi
if ! port_open 2181; then
    mkdir -p "$state/zookeeper/data"
    cat > "$state/zookeeper/zoo.cfg" <<CFG
tickTime=2000
dataDir=$state/zookeeper/data
clientPort=2181
clientPortAddress=127.0.0.1
admin.enableServer=false
4lw.commands.whitelist=ruok,srvr
CFG
    (cd "$state/zookeeper" && nohup java -cp "/usr/share/java/zookeeper.jar:/usr/share/java/*" \
        org.apache.zookeeper.server.ZooKeeperServerMain "$state/zookeeper/zoo.cfg" \
        > "$state/zookeeper/log" 2>&1 &)
    wait_port zookeeper 2181
fi
if ! port_open 8200; then
    (nohup .venv/bin/bao server -dev -dev-root-token-id=root \
        -dev-listen-address=127.0.0.1:8200 > "$state/openbao.log" 2>&1 &)
    wait_port openbao 8200
fi
