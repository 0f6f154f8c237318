from vfleet.cli import main

raise SystemExit(main())
