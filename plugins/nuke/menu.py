# CoolColor plug-in folder: Nuke runs this after init.py in interactive sessions; it adds
# Nodes toolbar > CoolColor > CoolColor and the CoolColor > Daemon status menu entry.
import coolcolor_nuke.menus

coolcolor_nuke.menus.register()
