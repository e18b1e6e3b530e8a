from hopfield.cli import main

raise SystemExit(main())
