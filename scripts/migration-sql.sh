#!/usr/bin/env bash
# Prints the SQL that takes a database from one Prisma schema to another, offline.
# The Prisma 7 CLI needs a native schema engine that cannot be downloaded everywhere; prisma@6.19
# computes the same diff with its JavaScript engine over an in-memory PGlite.
#   scripts/migration-sql.sh [FROM_SCHEMA|--from-empty] prisma/schema.prisma > prisma/migrations/<ts>_<name>/migration.sql
set -euo pipefail
from=${1:?usage: migration-sql.sh FROM_SCHEMA|--from-empty TO_SCHEMA}; to=${2:?TO_SCHEMA}
root=$(cd "$(dirname "$0")/.." && pwd)
work=${MQOTA_PRISMA6_DIR:-$root/node_modules/.cache/mqota-prisma6}
if [ ! -x "$work/node_modules/.bin/prisma" ]; then
  mkdir -p "$work"
  (cd "$work" && echo '{"private":true,"type":"module"}' > package.json &&
    npm i --silent --no-audit --no-fund prisma@6.19.3 pglite-prisma-adapter@0.6.1 @electric-sql/pglite@0.3 >&2)
fi
cat > "$work/prisma.config.ts" <<'TS'
import { defineConfig } from 'prisma/config';
import { PGlite } from '@electric-sql/pglite';
import { PrismaPGlite } from 'pglite-prisma-adapter';
export default defineConfig({ experimental: { adapter: true }, engine: 'js', adapter: async () => new PrismaPGlite(new PGlite()) } as never);
TS
# Prisma 6 wants a classic generator and a datasource url; neither changes the SQL.
to6() { sed -e 's/"prisma-client"/"prisma-client-js"/' -e '/moduleFormat/d' -e '/^  output /d' \
  -e 's|^  provider = "postgresql"|  provider = "postgresql"\n  url = "postgresql://unused@localhost/unused"|' "$1"; }
abs() { (cd "$root" && realpath "$1"); }
to6 "$(abs "$to")" > "$work/to.prisma"
args=(--to-schema-datamodel "$work/to.prisma")
if [ "$from" = --from-empty ]; then args=(--from-empty "${args[@]}"); else to6 "$(abs "$from")" > "$work/from.prisma"; args=(--from-schema-datamodel "$work/from.prisma" "${args[@]}"); fi
placeholder="$work/engine-placeholder"; : > "$placeholder"
cd "$work" && PRISMA_QUERY_ENGINE_LIBRARY=$placeholder PRISMA_SCHEMA_ENGINE_BINARY=$placeholder \
  npx prisma migrate diff "${args[@]}" --script 2> >(grep -v 'Loaded Prisma config' >&2)
