#!/bin/bash
# ZOOKEEPER_FOO_BAR=v becomes fooBar=v in zoo.cfg, as the Confluent image does.
set -euo pipefail
: "${ZOOKEEPER_CLIENT_PORT:?ZOOKEEPER_CLIENT_PORT is required (as in cp-zookeeper)}"
cfg=/etc/kafka/zookeeper.properties
{
  echo "dataDir=/var/lib/zookeeper/data"
  echo "dataLogDir=/var/lib/zookeeper/log"
  echo "4lw.commands.whitelist=ruok,srvr,stat,mntr"
  env | grep '^ZOOKEEPER_' | while IFS='=' read -r k v; do
    key=$(echo "${k#ZOOKEEPER_}" | tr 'A-Z' 'a-z' | sed -E 's/_([a-z])/\U\1/g')
    echo "$key=$v"
  done
} > "$cfg"
# An explicit jar list: the wildcard classpath pulls in two slf4j bindings and ZooKeeper exits.
jars="zookeeper zookeeper-jute slf4j-api slf4j-simple commons-cli metrics-core snappy-java netty-buffer netty-codec
      netty-common netty-handler netty-resolver netty-transport netty-transport-native-epoll netty-transport-native-unix-common"
cp=$(for j in $jars; do printf '/usr/share/java/%s.jar:' "$j"; done)
exec java -Xmx256m -cp "$cp" org.apache.zookeeper.server.quorum.QuorumPeerMain "$cfg"
