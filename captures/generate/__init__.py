"""The real-call capture generator: aiortc peers in Linux network namespaces, coturn as the cloud relay,
wireguard-go for the VPN user, tcpdump at the points a support engineer would capture.

    sudo python -m captures.generate [--only SCENARIO] [--out DIR]
"""
