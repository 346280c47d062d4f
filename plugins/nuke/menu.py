# CoolColor plug-in folder: Nuke runs this after init.py in interactive sessions. It adds
# Nodes toolbar > CoolColor > CoolColor and CoolColor > Daemon status. The installer's block in ~/.nuke/menu.py
# calls the same (idempotent) register(), so a manual install with only nuke.pluginAddPath works too.
import coolcolor_nuke.menus

coolcolor_nuke.menus.register()
