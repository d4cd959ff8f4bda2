#!/usr/bin/env bash
# The hand-written way, for benchmark (a): what a team writes without stackcheck to check the MT5
# stack — the same promises as suites/mt5.yaml (build and image metadata, every service's state,
# image, ports, network, volumes, restart policy, environment and mounts, the network and volumes,
# the smoke checks and the three scenarios), with `docker compose`, `docker inspect`,
# `docker exec` and curl, one after the other, then `down -v`. It prints PASS/FAIL per promise and
# exits 1 if any failed. Fair by construction: same compose file, same env file, same images and
# build cache, same order of bring-up (`up --wait` waits for the same healthchecks).
set -uo pipefail
cd "$(dirname "$0")/../.."

P="bench-mt5-$$"
DC=(docker compose -p "$P" -f fixtures/mt5/docker-compose.prod.yml --env-file fixtures/mt5/.env.example)
trap '"${DC[@]}" down -v --remove-orphans >/dev/null 2>&1' EXIT
failed=0 total=0
ok() { total=$((total + 1)); if "$@" >/dev/null 2>&1; then echo "PASS $name"; else echo "FAIL $name"; failed=$((failed + 1)); fi; }
eq() { [ "$1" = "$2" ]; }
has() { case "$1" in *"$2"*) return 0 ;; *) return 1 ;; esac; }
insp() { docker inspect -f "$2" "$1" 2>/dev/null; }
retry() { local until=$((SECONDS + $1)); shift; until "$@"; do [ $SECONDS -lt $until ] || return 1; sleep 0.5; done; }

# The compose file and the static rules (warnings in the suite; checked the same way here).
name=config; ok "${DC[@]}" config -q
cfg=$("${DC[@]}" config 2>/dev/null)
for s in strategy_runner feature_api db redis prometheus grafana; do name="config has $s"; ok has "$cfg" "  $s:"; done
name="policy latest tags"; ok has "$cfg" ":latest"
name="policy credentials"; ok test -n "$(grep -c PASSWORD fixtures/mt5/docker-compose.prod.yml)"

# test_docker_build.py: the build and both images with their metadata and files.
name=dockerfiles; ok test -f fixtures/mt5/Dockerfile.strategy -a -f fixtures/mt5/Dockerfile.api
name=build; ok "${DC[@]}" build
for img in mt5-strategy:latest mt5-api:latest; do
  name="$img labels"; ok eq "$(insp "$img" '{{index .Config.Labels "maintainer"}}/{{index .Config.Labels "version"}}')" "MT5 Trading Team/1.0"
  name="$img healthcheck"; ok test -n "$(insp "$img" '{{.Config.Healthcheck}}')"
  name="$img entrypoint"; ok eq "$(insp "$img" '{{json .Config.Entrypoint}}')" '["python3"]'
  name="$img cmd"; ok test -n "$(insp "$img" '{{json .Config.Cmd}}')"
  name="$img base"; ok has "$(insp "$img" '{{range .RootFS.Layers}}{{.}} {{end}}')" \
    "$(insp python:3.9-slim '{{range .RootFS.Layers}}{{.}} {{end}}' | awk '{print $NF}')"
  name="$img files"; ok docker run --rm --network none --entrypoint sh "$img" -c 'test ! -e /usr/bin/gcc && test -d /app/src'
done

# Bring-up: `up --wait` waits for every healthcheck.
name=up; ok "${DC[@]}" up -d --wait

# Every service's promises.
declare -A IMAGE=([mt5-strategy-runner]=mt5-strategy:latest [mt5-feature-api]=mt5-api:latest [mt5-db]=postgres:14-alpine
  [mt5-redis]=redis:7-alpine [mt5-prometheus]=prom/prometheus:latest [mt5-grafana]=grafana/grafana:latest)
declare -A PORTS=([mt5-strategy-runner]="5556 5555 9090" [mt5-feature-api]=8000 [mt5-db]=5432 [mt5-redis]=6379
  [mt5-prometheus]=9090 [mt5-grafana]=3000)
declare -A HEALTH=([mt5-strategy-runner]=healthy [mt5-feature-api]=healthy [mt5-db]=healthy [mt5-redis]=healthy)
for c in "${!IMAGE[@]}"; do
  if [ -n "${HEALTH[$c]:-}" ]; then name="$c state"; ok eq "$(insp "$c" '{{.State.Health.Status}}')" healthy
  else name="$c state"; ok eq "$(insp "$c" '{{.State.Status}}')" running; fi
  name="$c image"; ok eq "$(insp "$c" '{{.Config.Image}}')" "${IMAGE[$c]}"
  for p in ${PORTS[$c]}; do name="$c port $p"; ok test -n "$(docker port "$c" "$p/tcp")"; done
  name="$c network"; ok has "$(insp "$c" '{{json .NetworkSettings.Networks}}')" "${P}_mt5-net"
  name="$c mounts"; ok test -n "$(insp "$c" '{{json .Mounts}}')"
done
for c in mt5-strategy-runner mt5-feature-api; do
  name="$c restart"; ok eq "$(insp "$c" '{{.HostConfig.RestartPolicy.Name}}')" unless-stopped
done
name="strategy env"; ok has "$(insp mt5-strategy-runner '{{json .Config.Env}}')" "CONFIG_PATH=/app/config/strategies.yaml"
name="strategy zmq env"; ok has "$(insp mt5-strategy-runner '{{json .Config.Env}}')" "ZMQ_MARKET_PORT=5556"
name="strategy zmq env"; ok has "$(insp mt5-strategy-runner '{{json .Config.Env}}')" "ZMQ_EXEC_PORT=5555"
name="api env"; ok has "$(insp mt5-feature-api '{{json .Config.Env}}')" "REDIS_URL=redis://redis:6379"
name="db env"; ok has "$(insp mt5-db '{{json .Config.Env}}')" "POSTGRES_DB=mt5"
name="grafana env"; ok has "$(insp mt5-grafana '{{json .Config.Env}}')" "GF_INSTALL_PLUGINS=grafana-piechart-panel"
for m in /app/config /app/models; do name="strategy $m read-only"; ok sh -c "! docker exec mt5-strategy-runner touch $m/.probe"; done
name="api /app/models read-only"; ok sh -c '! docker exec mt5-feature-api touch /app/models/.probe'
name="strategy /data/logs writable"; ok docker exec mt5-strategy-runner sh -c 'touch /data/logs/.probe && rm /data/logs/.probe'
name="prometheus config read-only"; ok sh -c '! docker exec mt5-prometheus sh -c "echo >> /etc/prometheus/prometheus.yml"'

# The network and the volumes.
name="mt5-net subnet"; ok eq "$(docker network inspect -f '{{range .IPAM.Config}}{{.Subnet}}{{end}}' "${P}_mt5-net")" 172.28.0.0/16
for v in postgres_data redis_data prometheus_data grafana_data logs_volume; do name="volume $v"; ok docker volume inspect "${P}_$v"; done

# The smoke checks.
name="api health"; ok retry 30 sh -c 'curl -fsS localhost:8000/health | grep -q "\"redis\":\"ok\""'
name="api features"; ok sh -c 'curl -fsS localhost:8000/features/EURUSD | grep -q EURUSD'
name="redis ping"; ok eq "$(docker exec mt5-redis redis-cli ping)" PONG
name="redis appendonly"; ok has "$(docker exec mt5-redis redis-cli config get appendonly)" yes
name="pg_isready"; ok docker exec mt5-db pg_isready -U mt5_user
name="postgres port"; ok timeout 3 bash -c 'echo > /dev/tcp/127.0.0.1/5432'
name="runner reaches api"; ok eq "$(docker exec mt5-strategy-runner python3 -c "import urllib.request as u; print(u.urlopen('http://feature_api:8000/health', timeout=5).status)")" 200
name="runner metrics"; ok retry 20 sh -c 'curl -fsS localhost:9090/metrics | grep -q strategy_runner_ticks_total'
name="prometheus ready"; ok retry 30 curl -fsS localhost:9091/-/ready
name="grafana health"; ok retry 30 sh -c 'curl -fsS localhost:3000/api/health | grep -q ok'
name="uvicorn startup logged"; ok retry 10 sh -c 'docker logs mt5-feature-api 2>&1 | grep -q "Application startup complete"'

# Scenarios: data across down without -v; the runner back after a crash.
name="postgres data survives down/up"
ok sh -c "docker exec mt5-db psql -U mt5_user -d mt5 -c 'create table probe(x int); insert into probe values (42)' \
  && ${DC[*]} down && ${DC[*]} up -d --wait \
  && test \"\$(docker exec mt5-db psql -U mt5_user -d mt5 -tAc 'select x from probe')\" = 42"
name="runner back after a crash"
ok sh -c 'n=$(docker inspect -f "{{.RestartCount}}" mt5-strategy-runner)
  kill -KILL "$(docker inspect -f "{{.State.Pid}}" mt5-strategy-runner)"
  until=$(( $(date +%s) + 30 ))
  until [ "$(docker inspect -f "{{.RestartCount}} {{.State.Running}}" mt5-strategy-runner)" = "$((n + 1)) true" ]; do
    [ "$(date +%s)" -lt $until ] || exit 1; sleep 0.5; done'

# Teardown, and nothing left.
name=down; ok "${DC[@]}" down -v --remove-orphans
name="nothing left"; ok test -z "$(docker ps -aq --filter "label=com.docker.compose.project=$P")"
echo "$((total - failed))/$total passed"
[ "$failed" = 0 ]
