"""Voice and video calls: a selective forwarding unit (SFU) on aiortc, signalled over GraphQL.

forwarding.py  the encoded-frame forwarding path (the only module that touches aiortc's internals)
sdp.py         what a client's offer may contain, read before aiortc sees it
ice.py         the ICE servers handed to clients, with time-limited TURN credentials (coturn)
announce.py    which addresses the answers announce (a 1:1 NAT's public address, chosen interfaces)
room.py        one call: its peer connections, publications, subscriptions and participant states
hub.py         the calls of one process, and which process owns a call
"""
