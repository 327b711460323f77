# verifyd container image: a static binary on an empty base, run as non-root.
#   docker build --build-arg VERSION=$(git describe --tags --always --dirty) -t verifyd .
#   docker run -p 8080:8080 --env-file .env verifyd

FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
# The same build as on a workstation and in CI: `make build`
# (CGO_ENABLED=0, -trimpath, the version stamped in).
ARG VERSION
RUN if [ -n "$VERSION" ]; then make build VERSION="$VERSION"; else make build; fi

FROM scratch
# Twilio is reached over TLS: the binary needs the CA roots, nothing else.
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=build /src/bin/verifyd /verifyd
USER 65532:65532
ENV PORT=8080 APP_ENV=production
EXPOSE 8080
# No shell or curl in the image: the binary asks its own /healthz.
HEALTHCHECK --interval=15s --timeout=5s --start-period=5s --retries=3 CMD ["/verifyd", "-healthcheck"]
ENTRYPOINT ["/verifyd"]
