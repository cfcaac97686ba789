// ESM entry: the same module as `require('trackcore')`.
import trackcore from './index.js';

export const {
  Tracker,
  Money,
  RichLink,
  TrackError,
  InvalidEventError,
  InvalidTypeError,
  TrackerClosedError,
  ConfigError,
  DeliveryError,
  ERROR_CODES,
  CORE_VERSION,
  options,
} = trackcore;
export default trackcore;
