# The Trellis server image: `trellis server`, `scheduler`, `worker` and (with
# the Kubernetes agent) `agent` from one binary, with its dashboard.
#
#   docker build -t trellis .
#   docker run -p 8000:8000 -v trellis-data:/data trellis
#
# The build stage runs the same `scripts/dev dist` as a release (cargo-leptos
# and wasm-bindgen-cli from crates.io source, Tailwind and wasm-opt from npm),
# so the image holds exactly what the release archive holds.

FROM node:20-bookworm AS node

FROM rust:1.95-bookworm AS build
# Node.js 20 (Tailwind CSS 4 needs it; Debian bookworm ships 18).
COPY --from=node /usr/local/bin/node /usr/local/bin/node
COPY --from=node /usr/local/lib/node_modules /usr/local/lib/node_modules
RUN ln -s ../lib/node_modules/npm/bin/npm-cli.js /usr/local/bin/npm \
 && ln -s ../lib/node_modules/npm/bin/npx-cli.js /usr/local/bin/npx
WORKDIR /src
COPY . .
ENV CARGO_TARGET_DIR=/src/target
RUN scripts/dev dist && mkdir -p /out && cp -r dist/trellis-*-linux-*/. /out/

FROM debian:bookworm-slim AS runtime
# git: `init: git` steps; ca-certificates: TLS to PostgreSQL, RabbitMQ, S3.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ca-certificates git tini \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /data trellis \
 && mkdir -p /data && chown trellis /data
COPY --from=build /out/ /opt/trellis/
RUN ln -s /opt/trellis/trellis /usr/local/bin/trellis
USER trellis
WORKDIR /data
ENV TRELLIS_DATA_DIR=/data
EXPOSE 8000
ENTRYPOINT ["tini", "--", "trellis"]
CMD ["server", "--host", "0.0.0.0"]
