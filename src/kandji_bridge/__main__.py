from kandji_bridge.cli import main

main()
