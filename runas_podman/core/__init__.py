"""The pure core: a request becomes a plan, and a plan every unit property.

Owns the frozen types (model, unit), the one escaper of text for people (errors), the
unit-file gate (gate), the -p parser and its table (unitprops), runas-podman's and runas's
plans (plan, elevate), the plan as D-Bus properties and as a systemd-run line
(properties), the native backend's reading of a plan (native_plan). No I/O.
May import: the standard library, and core itself. Nothing else of ours.
"""
