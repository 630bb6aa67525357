from echo_splade.cli import main

main()
