#include "harness/cli/cli.h"

int main(int argc, char** argv) { return nightshift::cli::run(argc, argv); }
