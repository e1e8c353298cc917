# tally-node in a container: docker build -t tally-node .
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -o /tally-node ./cmd/node

FROM gcr.io/distroless/static-debian12
COPY --from=build /tally-node /tally-node
# Clients, routes, health.
EXPOSE 4222 6222 8080
ENTRYPOINT ["/tally-node"]
