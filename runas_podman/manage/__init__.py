"""Service users and their podman: setup (service_user), doctor, the podman API
(podman_api), Quadlets (quadlet), runas --empower's group and rule (empower).
May import: run, bus, host, core.
"""
