/*
 * cli.h -- private to qtune (api/): the daemon's client subcommands
 * (cli.c), each a main-like function returning the exit code cli.c
 * documents.
 */
#ifndef QT_CLI_H
#define QT_CLI_H

int qt_cli_submit(int argc, char **argv);
int qt_cli_status(int argc, char **argv);
int qt_cli_list(int argc, char **argv);
int qt_cli_watch(int argc, char **argv);
int qt_cli_pareto(int argc, char **argv);
int qt_cli_cancel(int argc, char **argv);
int qt_cli_pause(int argc, char **argv);
int qt_cli_resume(int argc, char **argv);
int qt_cli_models(int argc, char **argv);
int qt_cli_datasets(int argc, char **argv);
int qt_cli_eval(int argc, char **argv);
int qt_cli_server(int argc, char **argv);

#endif /* QT_CLI_H */
