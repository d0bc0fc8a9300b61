"""The pets lab: Docker's classic "pets" overlay example, on swimnet, in network namespaces.

    sudo python3 -m examples.pets            # from the repository root, swimnet installed

Two hosts (A, B) on a private underlay, a `swimnet-agent` on each; the network
`petsOverlay` is created on A and learned by B through gossip; a `db` container on B runs a
small TCP key-value server and a `web` container on A stores and reads pets in it by db's
overlay address. The demo then prints the cluster members, `network inspect petsOverlay`,
each agent's FDB (`fdb petsOverlay`), the kernel's entries, and the VXLAN frames (UDP 4789,
the network's VNI) it saw on the underlay. Needs Linux, root and iproute2; takes ~10 s;
removes every process and namespace it made, also on failure and Ctrl-C.

    sudo python3 -m examples.pets --docker   # the same hosts, each with a real dockerd

With `--docker` (dockerd, docker and busybox-static installed) each host runs a dockerd
whose network and IPAM driver is its swimnet-agent: `docker network create -d swimnet` on
both, `docker run` db on B (an HTTP server) and web on A, and web fetches from `db` by name
across the overlay; ~25 s.

Modules: `demo` (the narrated steps), `lab` (namespaces, processes, cleanup), `kv` (the
key-value server and client that run inside the containers), `docker` (a lab host with a
dockerd and an agent serving it; shared with tests/docker) and `docker_demo` (the Docker
mode's steps).
"""
