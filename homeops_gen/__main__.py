from homeops_gen.cli import main

raise SystemExit(main())
