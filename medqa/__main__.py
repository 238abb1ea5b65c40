from medqa.cli import main

raise SystemExit(main())
