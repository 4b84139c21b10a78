# Builds the gateway and approvals binaries (used by compose.yaml).
FROM rust:1.95-bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends libclang-dev && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cargo build --release -p portcullis -p portcullis-approvals

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates && rm -rf /var/lib/apt/lists/* \
    && useradd --system --home /var/lib/portcullis portcullis && mkdir -p /var/lib/portcullis && chown portcullis /var/lib/portcullis
COPY --from=build /src/target/release/portcullis /src/target/release/portcullis-approvals /usr/local/bin/
COPY policies /etc/portcullis/policies
USER portcullis
EXPOSE 6432 9090
ENTRYPOINT ["portcullis"]
CMD ["serve", "--config", "/etc/portcullis/portcullis.toml"]
