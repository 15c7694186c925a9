# mqota: build the TypeScript once, run the compiled service as an unprivileged user, on Node.js 24 LTS.
FROM node:24-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
COPY scripts/prisma-generate.mjs scripts/postinstall.mjs scripts/pglite-template.mjs scripts/
COPY prisma ./prisma
COPY prisma.config.ts ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
COPY broker ./broker
COPY certs/*.ts ./certs/
RUN npm run build && npm prune --omit=dev --ignore-scripts

FROM node:24-bookworm-slim
# jemalloc: ~11 KiB less memory per connected device than glibc's malloc (bin/start.sh).
RUN apt-get update && apt-get install -y --no-install-recommends libjemalloc2 && rm -rf /var/lib/apt/lists/*
ENV NODE_ENV=production \
    MQOTA_DATA_DIR=/data \
    MQOTA_CERTS_DIR=/certs \
    LOG_FORMAT=json
WORKDIR /app
COPY --from=build /app/package.json ./
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY --from=build /app/prisma ./prisma
COPY bin ./bin
RUN mkdir -p /data /certs && chown node:node /data /certs && ln -s /app/bin/mqota.js /usr/local/bin/mqota
USER node
VOLUME ["/data", "/certs"]
EXPOSE 8883 8443
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s \
  CMD ["node", "-e", "require('https').get({host:'127.0.0.1',port:process.env.HTTPS_PORT||8443,path:'/healthz',ca:require('fs').readFileSync('/certs/ca.crt'),servername:'localhost'},r=>process.exit(r.statusCode===200?0:1)).on('error',()=>process.exit(1))"]
# As npm start: node's flags (src/heap-tuning.ts) and jemalloc; exec, so node is the process that gets signals.
CMD ["sh", "bin/start.sh"]
