"""What crosses an agent boundary: message types, the relay that routes and records them, the
on-disk message log, and the neighbour topologies. Privacy claims are measured from this record."""
