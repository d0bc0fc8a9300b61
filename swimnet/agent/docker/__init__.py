"""swimnet as a Docker network driver and IPAM driver (libnetwork's remote plugin protocol).

    swimnet-agent run ... --docker-plugin            # /run/docker/plugins/swimnet.sock
    docker network create -d swimnet --ipam-driver swimnet --subnet 10.9.0.0/24 pets
    docker run --network pets --name web busybox

Modules, one concern each:
- `protocol`: the calls' JSON bodies, decoded and bounded (hostile input -> ProtocolError);
- `plugin`: the calls' dispatch (one lock, refusals answered, nothing half-recorded), over
  the agent's `Operations` (networks, endpoints), the dockerd API (names) and an address
  source; the calls by concern: `ipam_calls`, `network_calls`, `endpoint_calls`, `binding`
  (a Docker network to its swimnet network), `container_names` (DNS); `core` (records,
  lookups, the lock; the records themselves in `state`), `refusals`;
- `addresses`: the narrow Protocol the IPAM calls go through, and the interim source;
- `dockerd`: what the plugin reads from dockerd (a network's name, its containers' names);
- `reconcile`: the plugin's records against dockerd's, after restarts and missed calls;
- `follow`: dockerd's network creations, so a network exists cluster-wide at once;
- `sandbox`: waiting for a container's namespace to be mounted;
- `server`: the 0600 Unix socket and the HTTP routing; `service`: the daemon's wiring.

The datapath side is `swimnet.datapath` with hand-off endpoints: at `Join` the veth's
container end is left in the agent's namespace for dockerd to move into the sandbox.
"""
