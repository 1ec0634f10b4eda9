from rnnedge.cli import main

main()
