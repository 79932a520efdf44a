#!/bin/sh
# Regenerate the not-yet-released migration 0001 from the current schema (during development of issue 3).
set -e
cd "$(dirname "$0")/.."
rm -f server/migrations/0001_*.sql server/migrations/meta/0001_snapshot.json
node -e "const f='server/migrations/meta/_journal.json';const j=require('./'+f);j.entries=j.entries.filter(e=>e.idx<1);require('fs').writeFileSync(f,JSON.stringify(j,null,2)+'\n')"
npx drizzle-kit generate --name campaigns
# Settings drizzle-kit does not model.
cat server/migrations/extra/0001_tail.sql >> server/migrations/0001_campaigns.sql
