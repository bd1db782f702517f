from faceedit.cli import main

raise SystemExit(main())
