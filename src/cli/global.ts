export interface GlobalFlags {
  json: boolean;
  debug: boolean;
  verbose: boolean;
}
