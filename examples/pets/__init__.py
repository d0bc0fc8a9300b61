"""The pets lab: Docker's classic "pets" overlay example, on swimnet, in network namespaces.

    sudo python3 -m examples.pets            # from the repository root, swimnet installed

Two hosts (A, B) on a private underlay, a `swimnet-agent` on each; the network
`petsOverlay` is created on A and learned by B through gossip; containers `db` (B), `web1`
(A), `web2` (B) and `client` (A) are plugged in (addresses from the network's IPAM); the service
`web` puts web1 and web2 behind a VIP (port 80 -> 8080). `db` runs a small TCP key-value
server; web1 and web2 run its web front, which reaches the db as `db:6379` (by name,
through the container's resolver at 127.0.0.11); the client stores and reads pets at
`web:80` (the service's name, its VIP), one connection per command, and the VIP's
nftables rules spread them over both web containers. The demo then prints the cluster
members, `network inspect` and `service inspect`, each agent's FDB, the kernel's entries and
VIP maps, and the VXLAN frames (UDP 4789, the network's VNI) it saw on the underlay. Needs
Linux, root, iproute2 and nftables; takes ~30 s (more on a loaded machine); removes every
process, namespace and /etc/netns directory it made, also on failure and Ctrl-C.

    sudo python3 -m examples.pets --docker   # the same hosts, each with a real dockerd

With `--docker` (dockerd, docker and busybox-static installed) each host runs a dockerd
whose network and IPAM driver is its swimnet-agent: `docker network create -d swimnet` on
both, `docker run` db on B (an HTTP server) and web on A, and web fetches from `db` by name
across the overlay; ~25 s.

Modules: `demo` (the narrated steps), `lab` (namespaces, processes, cleanup), `kv` (the
key-value server, its web front and the client that run inside the containers), `docker` (a
lab host with a dockerd and an agent serving it; shared with tests/docker) and
`docker_demo` (the Docker mode's steps).
"""
