from bench.event_log.main import main

main()
